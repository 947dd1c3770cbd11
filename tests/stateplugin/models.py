from django.db import models


class Counter(models.Model):
    name = models.CharField(max_length=100, primary_key=True)
    value = models.BigIntegerField(default=0)
