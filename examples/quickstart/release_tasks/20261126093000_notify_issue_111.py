from afterparty import task


@task(description="Tell customer service that issue 111 is fixed")
def run(ctx):
    ctx.log.info("notifying customer service")
    release = ctx.release or "no release id"   # None where no release is known
    ctx.notify("Issue 111 is fixed (release: %s): please tell customer X" % release)
