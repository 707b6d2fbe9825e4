from django.db.models import F

from afterparty import task
from shop.models import Customer


@task(description="Give every customer 100 loyalty points for the launch of the loyalty program")
def run(ctx):
    # Runs inside transaction.atomic(): if anything below raises, no customer gets points,
    # and afterparty records the task as failed; it runs again on the next deploy.
    changed = Customer.objects.update(loyalty_points=F("loyalty_points") + 100)
    ctx.log.info("gave 100 points to %d customers", changed)
