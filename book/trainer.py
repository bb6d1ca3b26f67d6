"""The book's ``common.trainer.Trainer``: its signature, printed lines and accuracy lists."""

import numpy as np

from bpnet.book import optimizer as _optimizer

OPTIMIZERS = {
    name.lower(): getattr(_optimizer, name)
    for name in ("SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam")
}


class Trainer:
    """Trains ``network`` (anything with params, gradient, loss, accuracy) on mini-batches drawn
    at random with replacement (NumPy's global generator), ``epochs`` × N / mini_batch_size
    updates; each epoch's start records train and test accuracy (on the first
    ``evaluate_sample_num_per_epoch`` images when given) in ``train_acc_list``/``test_acc_list``,
    and every update's loss in ``train_loss_list``. ``optimizer`` is a name of
    ``bpnet.book.optimizer`` (any case), built with ``optimizer_param``.
    """

    def __init__(
        self,
        network,
        x_train,
        t_train,
        x_test,
        t_test,
        epochs=20,
        mini_batch_size=100,
        optimizer="SGD",
        optimizer_param={"lr": 0.01},  # noqa: B006 (the book's signature; never mutated)
        evaluate_sample_num_per_epoch=None,
        verbose=True,
    ):
        self.network, self.verbose = network, verbose
        self.x_train, self.t_train, self.x_test, self.t_test = x_train, t_train, x_test, t_test
        self.epochs, self.batch_size = epochs, mini_batch_size
        self.evaluate_sample_num_per_epoch = evaluate_sample_num_per_epoch
        self.optimizer = OPTIMIZERS[optimizer.lower()](**optimizer_param)
        self.train_size = x_train.shape[0]
        self.iter_per_epoch = max(self.train_size / mini_batch_size, 1)
        self.max_iter = int(epochs * self.iter_per_epoch)
        self.current_iter = self.current_epoch = 0
        self.train_loss_list, self.train_acc_list, self.test_acc_list = [], [], []

    def _say(self, text):
        if self.verbose:
            print(text)

    def train_step(self):
        """One update on a random batch; at an epoch's start, the two accuracies first."""
        batch = np.random.choice(self.train_size, self.batch_size)
        x, t = self.x_train[batch], self.t_train[batch]
        self.optimizer.update(self.network.params, self.network.gradient(x, t))
        loss = self.network.loss(x, t)
        self.train_loss_list.append(loss)
        self._say(f"train loss:{loss}")
        if self.current_iter % self.iter_per_epoch == 0:
            self.current_epoch += 1
            n = self.evaluate_sample_num_per_epoch  # None: every image
            train_acc = self.network.accuracy(self.x_train[:n], self.t_train[:n])
            test_acc = self.network.accuracy(self.x_test[:n], self.t_test[:n])
            self.train_acc_list.append(train_acc)
            self.test_acc_list.append(test_acc)
            self._say(
                f"=== epoch:{self.current_epoch}, train acc:{train_acc}, test acc:{test_acc} ==="
            )
        self.current_iter += 1

    def train(self):
        for _ in range(self.max_iter):
            self.train_step()
        test_acc = self.network.accuracy(self.x_test, self.t_test)
        self._say("=============== Final Test Accuracy ===============")
        self._say(f"test acc:{test_acc}")
