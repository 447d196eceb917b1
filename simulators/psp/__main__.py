from simulators.common import run
from simulators.psp.app import make_app

if __name__ == "__main__":
    run("psp", make_app)
