"""Small helpers with no better room: devices, precision, a full disk, RNG states, atomic writes."""
