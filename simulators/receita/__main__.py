from simulators.common import run
from simulators.receita.app import make_app

if __name__ == "__main__":
    run("receita", make_app)
