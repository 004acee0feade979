"""Signals from outside the cluster: demand-response dispatches, energy prices, hashprice."""
