"""Layer 6: the CL language — the command table and the values of its parameters."""
