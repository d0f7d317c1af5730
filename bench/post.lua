-- wrk script: POSTs one JSON item to /items/42?q=blue&qty=3, the route of
-- bench/apps/fastapi_items.py.
wrk.method = "POST"
wrk.path = "/items/42?q=blue&qty=3"
wrk.body = '{"name": "widget", "price": 9.99, "tags": ["a", "b"]}'
wrk.headers["Content-Type"] = "application/json"
