"""The local stack: real servers from PyPI plus every service, for `make dev` and tests."""

from ecom_stack.ports import Ports
from ecom_stack.procs import StackError
from ecom_stack.stack import SERVICES, LocalStack

__all__ = ["SERVICES", "LocalStack", "Ports", "StackError"]
