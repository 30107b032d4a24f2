"""The application layer: the `grounding_dino` console script, argument parsing, job chaining and every
action's entry point. It sits on top of everything (cli -> hpo -> gdino, trt; trt -> gdino); no other
package of this project imports it (tests/cli/test_layering.py)."""
