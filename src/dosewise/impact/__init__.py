"""Impact model: deaths averted by an allocation, for all participants at once."""
