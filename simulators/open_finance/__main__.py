from simulators.common import run
from simulators.open_finance.app import make_app

if __name__ == "__main__":
    run("open_finance", make_app)
