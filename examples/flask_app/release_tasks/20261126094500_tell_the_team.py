from sqlalchemy import func, select

from afterparty import task
from shop import Customer


@task(description="Tell the team that loyalty points are live")
def run(ctx):
    customers = ctx.session.scalar(select(func.count()).select_from(Customer))
    # With no notify URL configured, the message is only logged (and kept with the attempt).
    ctx.notify(f"Loyalty points are live in {ctx.env} ({customers} customers)",
               title=f"Release {ctx.release or 'unknown'}")
