"""Library-level checks of the paper: the sigma contract on real data, stream quietness, and monitor overhead."""
