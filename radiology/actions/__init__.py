"""Domain actions, one module per domain: each changes data inside one transaction and writes an
audit event. Views and API views only translate HTTP into these calls, so the page and the API share
every rule. Side effects on other systems (the task queue) happen only after the transaction commits.
"""
