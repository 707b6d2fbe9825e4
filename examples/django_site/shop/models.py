from django.db import models


class Customer(models.Model):
    name = models.CharField(max_length=100, unique=True)
    loyalty_points = models.IntegerField(default=0)

    def __str__(self):
        return self.name
