"""Published implementation stacks rebuilt on their own PyPI packages (dcls, spikingjelly): the parity oracle."""
