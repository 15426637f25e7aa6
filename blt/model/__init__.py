"""The BLT model: global transformer, shared blocks and the builder that wires plugins together."""
