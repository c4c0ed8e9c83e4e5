from tests.support.stores import migrated_any_store, migrated_store  # noqa: F401
