"""What every converter raises when an official weights file does not map onto our network."""


class ConversionError(ValueError):
    """Raised when an official file does not fit the network it is converted for; nothing is saved then."""
