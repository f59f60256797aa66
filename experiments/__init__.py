"""DeepDrift reproduction suite: the paper's experiments as an importable package.

One folder per study sits on a shared floor (``experiments.data``, ``experiments.models``). Nothing here
imports Snakemake; ``workflow/scripts`` adapt the Snakemake object to these functions.
"""
