"""Master data over the API: plants, shifts, lines, stations, products, defect types."""
