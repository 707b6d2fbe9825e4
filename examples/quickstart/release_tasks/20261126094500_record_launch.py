from afterparty import task


@task(description="Record the launch in the tracking database, with this task's success")
def run(ctx):
    # ctx.db.execute and ctx.db.query take %s placeholders on SQLite, PostgreSQL and MySQL alike.
    ctx.db.execute("CREATE TABLE IF NOT EXISTS launches (feature VARCHAR(100), env VARCHAR(100))")
    ctx.db.execute("INSERT INTO launches (feature, env) VALUES (%s, %s)", ("search", ctx.env))
    (count,), = ctx.db.query("SELECT COUNT(*) FROM launches WHERE env = %s", (ctx.env,))
    print("launch recorded for", ctx.env, "-", count, "so far")
