"""A zoo of NumPyro models to test and benchmark samplers on, with reference posteriors.

- `posteriordb(name)`: eight posteriors from posteriordb with gold-standard reference summaries
  (`POSTERIORDB_NAMES`);
- `eight_schools()`, `eight_schools_centered()`: the hierarchical classic, easy and funnel forms;
- `german_credit()`: 25-dimensional logistic regression, the parallel-MALA benchmark.

Each returns a `Posterior` (model, data, reference, Stan-name conversions), and
`check_reference(posterior, samples)` scores any sampler's draws against the reference.

```python
import jax
from numpyro.infer import MCMC, NUTS
from pnmcmc.models import check_reference, posteriordb

post = posteriordb("kidiq-kidscore_momhs")
mcmc = MCMC(NUTS(post.model), num_warmup=500, num_samples=1000, num_chains=4)
mcmc.run(jax.random.key(0), *post.model_args, **post.model_kwargs)
check_reference(post, mcmc.get_samples(group_by_chain=True)).passes()
```
"""

from .eight_schools import eight_schools as eight_schools
from .eight_schools import eight_schools_centered as eight_schools_centered
from .german_credit import german_credit as german_credit
from .names import column_names as column_names
from .posterior import Posterior as Posterior
from .posteriordb import POSTERIORDB_NAMES as POSTERIORDB_NAMES
from .posteriordb import posteriordb as posteriordb
from .reference import ColumnCheck as ColumnCheck
from .reference import ReferenceCheck as ReferenceCheck
from .reference import check_reference as check_reference
