"""The demo: synthetic yogurt-bottle frames, a small CNN trained on them, and the seed.

``frames`` draws the frames (Pillow and NumPy only), ``training`` fits and
exports the model (imports TensorFlow, so import it only when training), and
``seed`` loads the demo plant, users and model into the database.
"""
