from afterparty import task


@task(description="Record the launch in the tracking database, with this task's success")
def run(ctx):
    ctx.db.execute("CREATE TABLE IF NOT EXISTS launches (feature TEXT, env TEXT)")
    ctx.db.execute("INSERT INTO launches VALUES (?, ?)", ("search", ctx.env))
    print("launch recorded for", ctx.env)
