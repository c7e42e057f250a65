"""facefront runtime library: image decoding, face analysis, and the pieces the Triton stages are built from."""
