from tests.support.stores import migrated_store  # noqa: F401
