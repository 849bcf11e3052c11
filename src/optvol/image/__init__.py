"""Layer 2: the volume image on disk (DESIGN §3, docs/format.md)."""
