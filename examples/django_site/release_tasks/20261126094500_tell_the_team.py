from afterparty import task
from shop.models import Customer


@task(description="Tell the team that loyalty points are live")
def run(ctx):
    # With no NOTIFY URL configured, the message is only logged (and kept with the attempt).
    ctx.notify(f"Loyalty points are live in {ctx.env} ({Customer.objects.count()} customers)",
               title=f"Release {ctx.release or 'unknown'}")
