"""edsgrade: the autograded assignment system of the IPGP course "Earth data science"."""
__version__ = "0.1.0"
