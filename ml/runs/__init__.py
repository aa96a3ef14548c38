"""Each operation's run, in the module named like the operation (its declaration is in ml/operations/)."""
