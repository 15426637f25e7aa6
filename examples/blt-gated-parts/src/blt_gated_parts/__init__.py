"""Example blt-lab plugins: the ``conv_pool`` encoder, the ``gated`` decoder and the ``chunked``
attention backend, one module (and one entry point) each."""
