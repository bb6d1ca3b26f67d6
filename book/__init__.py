"""bpnet.book: the names of the book's ``common/`` and ``dataset/`` packages on bpnet.

"Deep Learning from Scratch" (O'Reilly Japan) imports its helpers as ``common.X`` and
``dataset.mnist``; here they are ``bpnet.book.X`` and ``bpnet.book.mnist``, with the book's
signatures and defaults, implemented by ``bpnet.nn``. The rule for a script of the book:

    from common.X import ...           ->  from bpnet.book.X import ...
    from dataset.mnist import load_mnist  ->  from bpnet.book.mnist import load_mnist
    from layer_naive / two_layer_net   ->  from bpnet.book.layer_naive / .two_layer_net

Chapters 7 and 8's ``simple_convnet.py`` and ``deep_convnet.py`` are the book's own files, next
to the scripts that import them, rewritten by the same rule.

Randomness comes from NumPy's global generator, as in the book, so ``np.random.seed``
makes a script repeatable.
"""
