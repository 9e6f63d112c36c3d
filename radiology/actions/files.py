"""Stored files that follow their rows: a file written inside a transaction is deleted when it rolls back."""


def delete_stored_file(field_file):
    if field_file and field_file.name:
        field_file.storage.delete(field_file.name)
