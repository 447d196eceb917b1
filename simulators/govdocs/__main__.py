from simulators.common import run
from simulators.govdocs.app import make_app

if __name__ == "__main__":
    run("govdocs", make_app)
