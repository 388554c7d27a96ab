"""How the browser tests and the review benchmark start Debian's Chromium.

Headless, and nothing that would reach the network on its own (updates,
sync, first-run pages): the machines have no internet.
"""

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
