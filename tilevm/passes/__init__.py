"""Passes: named, pure functions from Tile IR program to Tile IR program (layout inference, vectorization,
shared-memory planning, instruction selection). The pipeline is a plain list of them."""
