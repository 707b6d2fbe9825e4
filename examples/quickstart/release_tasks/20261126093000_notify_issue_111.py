from afterparty import task


@task(description="Tell customer service that issue 111 is fixed")
def run(ctx):
    ctx.log.info("notifying customer service")
    ctx.notify("Issue 111 is fixed in release %s: please tell customer X" % ctx.release)
