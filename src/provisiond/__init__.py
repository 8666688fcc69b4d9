"""provisiond: register devices, let people claim them, put them on the network."""

__version__ = "0.1.0"
