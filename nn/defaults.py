"""The numbers bpnet's maths runs with unless told otherwise.

Plain numbers and no imports, so that a command's ``--help`` can show them without loading
NumPy. (Batch normalization's eps and momentum are ``layers.BatchNormalization``'s defaults.)
"""

# gradcheck: the largest relative error a coordinate may have
GRADCHECK_TOL = 1e-7
# h of the centered differences (f(x+h) - f(x-h)) / 2h: gradcheck's, and any numerical gradient's
GRADCHECK_STEP = 1e-5
# evaluation: images per forward pass (and per reused float buffer)
EVAL_BATCH = 10000
# evaluation of a convolutional network: at most this many bytes of layer outputs and im2col rows
# per forward pass (its batches are made smaller to fit; a fully connected net's are not)
EVAL_MEMORY = 256 * 1024**2
