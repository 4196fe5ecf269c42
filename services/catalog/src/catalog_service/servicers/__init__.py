"""The catalog's gRPC servicers: proto messages in and out; the rules live one level up."""

from catalog_service.servicers.categories import CategoryServicer
from catalog_service.servicers.internal import CatalogInternalServicer
from catalog_service.servicers.inventory import InventoryServicer
from catalog_service.servicers.products import ProductServicer
from catalog_service.servicers.reads import LIST_SORTS, Reads

__all__ = [
    "LIST_SORTS",
    "CatalogInternalServicer",
    "CategoryServicer",
    "InventoryServicer",
    "ProductServicer",
    "Reads",
]
