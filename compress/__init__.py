"""compress: make CIFAR-10 CNNs smaller and faster with pruning and quantization, with honest numbers.

Data flows one way: data -> models -> train -> importance -> pruning / sparse -> quant -> metrics -> plots.
"""
from .profiles import Profile, get_profile  # noqa: F401

__version__ = "0.1.0"
