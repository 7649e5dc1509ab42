"""NumPy fitting: Newton and L-BFGS-B on the exact tables (MAP, profile fits); no PyMC."""
