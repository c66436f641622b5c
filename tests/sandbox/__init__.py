"""The sandbox tests: levels, the attack battery, the judge, the pool and the CLI."""
