from simulators.bureau.app import make_app
from simulators.common import run

if __name__ == "__main__":
    run("bureau", make_app)
