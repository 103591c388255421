"""What the network does, for people and for other runtimes: the neuron explorer,
how one example or many would change every weight, the plots, and ONNX export.
"""
