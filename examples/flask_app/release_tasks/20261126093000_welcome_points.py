from sqlalchemy import update

from afterparty import task
from shop import Customer


@task(description="Give every customer 100 loyalty points for the launch of the loyalty program")
def run(ctx):
    # ctx.session (not db.session) works inside the task's transaction: its changes commit
    # together with the task's success record, or not at all if anything raises.
    result = ctx.session.execute(update(Customer).values(loyalty_points=Customer.loyalty_points + 100))
    ctx.log.info("gave 100 points to %d customers", result.rowcount)
