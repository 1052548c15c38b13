"""``python -m undersign.emulator``: the same as ``undersign emulator``."""

from undersign.emulator.standalone import emulator_command

if __name__ == "__main__":
    emulator_command(prog_name="python -m undersign.emulator")
