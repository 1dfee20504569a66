"""Signal screen: every drug–event pair of the lake, scored for disproportionality.

The pure numerical part (the MGPS prior fit, EBGM and its posterior quantiles,
the BCPNN information component, data squashing) is :mod:`.mgps`, numpy and
scipy only; the Spark job that counts the pairs and calls it batch by batch
lives beside it.
"""
