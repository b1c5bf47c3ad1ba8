pytest_plugins = ["mlcraft.testing.pytest_plugin"]
