"""The math the compiled loop is built from: activations, the network, the
optimisers, the few primitives, one epoch's loop and the compiler.  Imports nothing
of the rest of digitnet.
"""
