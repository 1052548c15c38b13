"""Planted bug for rule unvalidated-redirect: never imported."""

from flask import Flask, redirect, request

app = Flask(__name__)


@app.get("/go")
def go():  # type: ignore[no-untyped-def]
    return redirect(request.args.get("next", "/"))


@app.post("/go-form")
def go_form():  # type: ignore[no-untyped-def]
    target = request.form["next"]
    return redirect(target)
