"""What digitnet reads and writes: safe paths and atomic writes, model files,
checkpoints, their schemas, and MNIST's IDX files.
"""
