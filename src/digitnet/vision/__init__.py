"""Pictures to inputs to guesses: preprocessing a photo or a drawing into MNIST's
28x28 form, and reading the digit in it.
"""
