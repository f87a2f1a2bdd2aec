"""The simulated FX market, its broker's venue, the network between, and the SimPy driver."""
